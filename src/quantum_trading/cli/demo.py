"""``quantum demo`` (filled in below)."""


def demo() -> None:
    """Run the demo."""
