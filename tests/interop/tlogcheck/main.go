// tlogcheck reads Sun Commune's ledger as an independent client would, with
// Go's own implementation of signed notes and transparency logs
// (golang.org/x/mod/sumdb/note and sumdb/tlog), and prints what they said.
//
//	tlogcheck BASE_URL OLD_BATCH INDEX...
//
// BASE_URL is the site (http://host:port). It opens the latest checkpoint
// note and OLD_BATCH's with the published verifier key, reads their tree
// heads, proves each INDEX's inclusion from the tiles (hashes checked
// against the entry bundle), proves the old tree consistent with the new one
// from the tiles, and checks the site's own consistency and inclusion proofs.
// Any failure exits 1.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var base string

func get(path string) []byte {
	resp, err := http.Get(base + path)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		fail("GET %s: status %d %v %q", path, resp.StatusCode, err, body)
	}
	return body
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

// tiles reads C2SP tlog-tiles paths: Go's sumdb paths less the height element.
type tiles struct{}

func (tiles) Height() int { return 8 }

func (tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, t := range ts {
		path := "/ledger/tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
		out = append(out, get(path))
	}
	return out, nil
}

func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func openCheckpoint(path string, verifiers note.Verifiers, origin string) (tlog.Tree, string) {
	msg := get(path)
	n, err := note.Open(msg, verifiers)
	if err != nil {
		fail("note.Open(%s): %v", path, err)
	}
	fmt.Printf("note.Open(%s): ok, %d verified signature(s) by %q\n", path, len(n.Sigs), n.Sigs[0].Name)
	first := strings.SplitN(n.Text, "\n", 2)[0]
	if first != origin {
		fail("origin line %q is not the key name %q", first, origin)
	}
	if _, err := tlog.ParseTree([]byte(n.Text)); err != nil {
		fmt.Printf("tlog.ParseTree(note text): %v (it wants the go.sum origin line)\n", err)
	}
	// The body after the origin line is the same format as go.sum's tree note.
	tree, err := tlog.ParseTree([]byte("go.sum database tree\n" + strings.SplitN(n.Text, "\n", 2)[1]))
	if err != nil {
		fail("tlog.ParseTree(with go.sum origin): %v", err)
	}
	fmt.Printf("tlog.ParseTree: size %d hash %s\n", tree.N, tree.Hash)
	return tree, n.Text
}

func hexHash(s string) tlog.Hash {
	var h tlog.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		fail("bad hash %q", s)
	}
	copy(h[:], b)
	return h
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: tlogcheck BASE_URL OLD_BATCH INDEX...")
	}
	base = strings.TrimRight(os.Args[1], "/")
	vkey := strings.TrimSpace(string(get("/ledger/verifier-key.txt")))
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("note.NewVerifier(%q): %v", vkey, err)
	}
	fmt.Printf("note.NewVerifier: key %q hash %08x\n", verifier.Name(), verifier.KeyHash())
	verifiers := note.VerifierList(verifier)
	tree, _ := openCheckpoint("/ledger/checkpoint", verifiers, verifier.Name())
	old, _ := openCheckpoint("/ledger/checkpoints/"+os.Args[2], verifiers, verifier.Name())
	reader := tlog.TileHashReader(tree, tiles{})

	for _, arg := range os.Args[3:] {
		index, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			fail("bad index %q", arg)
		}
		data := bundleEntry(tree, index)
		leaf := tlog.RecordHash(data)
		proof, err := tlog.ProveRecord(tree.N, index, reader)
		if err != nil {
			fail("tlog.ProveRecord(%d): %v", index, err)
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, leaf); err != nil {
			fail("tlog.CheckRecord(%d) from tiles: %v", index, err)
		}
		var served struct {
			Entry     string   `json:"entry"`
			AuditPath []string `json:"audit_path"`
			TreeSize  int64    `json:"tree_size"`
		}
		if err := json.Unmarshal(get(fmt.Sprintf("/ledger/entries/%d/proof.json", index)), &served); err != nil {
			fail("proof.json: %v", err)
		}
		if served.Entry != string(data) {
			fail("entry %d: the bundle's bytes are not proof.json's entry", index)
		}
		var path tlog.RecordProof
		for _, h := range served.AuditPath {
			path = append(path, hexHash(h))
		}
		if served.TreeSize == tree.N {
			if err := tlog.CheckRecord(path, tree.N, tree.Hash, index, leaf); err != nil {
				fail("tlog.CheckRecord(%d) of proof.json: %v", index, err)
			}
		}
		fmt.Printf("inclusion of entry %d in tree %d: ok (tiles and proof.json)\n", index, tree.N)
	}

	proof, err := tlog.ProveTree(tree.N, old.N, reader)
	if err != nil {
		fail("tlog.ProveTree: %v", err)
	}
	if err := tlog.CheckTree(proof, tree.N, tree.Hash, old.N, old.Hash); err != nil {
		fail("tlog.CheckTree from tiles: %v", err)
	}
	var served struct {
		OldSize int64    `json:"old_size"`
		NewSize int64    `json:"new_size"`
		OldRoot string   `json:"old_root"`
		NewRoot string   `json:"new_root"`
		Proof   []string `json:"proof"`
	}
	if err := json.Unmarshal(get(fmt.Sprintf("/ledger/consistency/%d/%d.json", old.N, tree.N)), &served); err != nil {
		fail("consistency json: %v", err)
	}
	var path tlog.TreeProof
	for _, h := range served.Proof {
		path = append(path, hexHash(h))
	}
	if hexHash(served.OldRoot) != old.Hash || hexHash(served.NewRoot) != tree.Hash {
		fail("consistency json: roots are not the checkpoints'")
	}
	if err := tlog.CheckTree(path, tree.N, tree.Hash, old.N, old.Hash); err != nil {
		fail("tlog.CheckTree of the served proof: %v", err)
	}
	if len(path) != len(proof) {
		fail("the served proof has %d hashes, Go's %d", len(path), len(proof))
	}
	for i := range path {
		if path[i] != proof[i] {
			fail("the served proof differs from Go's at %d", i)
		}
	}
	fmt.Printf("consistency of tree %d with tree %d: ok (tiles and consistency json)\n", old.N, tree.N)
	fmt.Println("OK")
}

// bundleEntry reads entry index from its entry bundle (uint16 big-endian
// length, then the bytes), full or partial as the tree size says.
func bundleEntry(tree tlog.Tree, index int64) []byte {
	n := index / 256
	w := int64(256)
	if (n+1)*256 > tree.N {
		w = tree.N - n*256
	}
	path := strings.TrimPrefix(tlog.Tile{H: 8, L: 0, N: n, W: int(w)}.Path(), "tile/8/0/")
	r := bytes.NewReader(get("/ledger/tile/entries/" + path))
	var data []byte
	for i := int64(0); i <= index-n*256; i++ {
		var size uint16
		if err := binary.Read(r, binary.BigEndian, &size); err != nil {
			fail("entry bundle %s: %v", path, err)
		}
		data = make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			fail("entry bundle %s: %v", path, err)
		}
	}
	return data
}
