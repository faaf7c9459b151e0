"""What need cards (the supermarket, the home page, the village pages) load,
and what a public page may load of a household."""

# What a card shows, and the sort keys of the lists that show cards: a list
# loads nothing else (no description, no search terms, and none of the
# household's private fields, which would be decrypted for nothing).
CARD_FIELDS = (
    "title",
    "status",
    "category",
    "kind",
    "item",
    "unit",
    "quantity",
    "unit_price",
    "target_amount",
    "pledged_quantity",
    "received_quantity",
    "pledged_amount",
    "received_amount",
    "progress",
    "deadline",
    "published_at",
    "fulfilled_at",
    "village__name",
    "village__name_en",
    "township__name",
    "township__name_en",
    "county__name",
    "county__name_en",
    "household__public_id",
    "household__alias",
    "household__alias_consent",
)


# What a public page or a donor's page may show of a household.
HOUSEHOLD_SHOWN = {
    "id",
    "village",
    "public_id",
    "alias",
    "alias_consent",
    "size",
    "poverty_causes",
    "story",
    "story_consent",
    "photo_consent",
    "status",
}


def private_household_fields(path: str) -> list[str]:
    """The household's other fields under ``path`` (say "need__household"),
    for ``defer()``: a page that shows a household by its public label does
    not load (and decrypt) its private fields."""
    from households.models import Household

    return [f"{path}__{f.name}" for f in Household._meta.concrete_fields if f.name not in HOUSEHOLD_SHOWN]


def for_cards(needs):
    """``needs`` with what their cards show, and only that."""
    return needs.select_related("village", "township", "county", "household").only(*CARD_FIELDS)
