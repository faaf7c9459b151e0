// Checks an inclusion proof in the browser, the same way tools/verify_ledger.py
// does: RFC 9162 §2.1.3.2 over SHA-256, then the checkpoint's Ed25519 signature
// where the browser's WebCrypto knows Ed25519. No library, no network.
(function () {
  "use strict";
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (s) => new Uint8Array(s.match(/../g).map((h) => parseInt(h, 16)));
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const node = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  async function included(proof) {
    let fn = proof.leaf_index, sn = proof.tree_size - 1;
    if (fn > sn) return false;
    let r = await sha256(concat(Uint8Array.of(0), new TextEncoder().encode(proof.entry)));
    for (const p of proof.audit_path.map(unhex)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await node(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await node(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && hex(r) === proof.checkpoint.root_hash;
  }

  async function signed(cp) {
    const message = new TextEncoder().encode(
      `sun-commune-checkpoint/v1\nbatch ${cp.batch}\ntree_size ${cp.tree_size}\nroot ${cp.root_hash}\ntime ${cp.timestamp}\n`);
    try {
      const key = await crypto.subtle.importKey("raw", unhex(cp.public_key), { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, unhex(cp.signature), message);
    } catch (e) {
      return null; // this browser cannot check Ed25519: the verifier can
    }
  }

  async function check(button) {
    const out = document.getElementById(button.dataset.result);
    const proof = JSON.parse(document.getElementById(button.dataset.proof).textContent);
    const keyElement = document.getElementById("site-key");
    const siteKey = keyElement ? keyElement.textContent.trim() : "";
    if (!window.crypto || !crypto.subtle) { out.textContent = out.dataset.insecure; return; }
    const ok = await included(proof);
    const sig = await signed(proof.checkpoint);
    const pinned = !siteKey || siteKey === proof.checkpoint.public_key;
    out.className = ok && sig !== false && pinned ? "text-success fw-bold" : "text-danger fw-bold";
    out.textContent = !ok ? out.dataset.bad : sig === false || !pinned ? out.dataset.badsig : sig === null ? out.dataset.nosig : out.dataset.good;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-check-proof]");
    if (button) { event.preventDefault(); check(button); }
  });
})();
