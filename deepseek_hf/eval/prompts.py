"""Prompt pieces that Jinja in a task YAML cannot express (referenced with `!function`)."""


def chid_choices(doc: dict) -> list[str]:
    """CHID: each candidate idiom followed by the rest of the passage after the blank."""
    return [candidate + doc["suffix"] for candidate in doc["candidates"]]
