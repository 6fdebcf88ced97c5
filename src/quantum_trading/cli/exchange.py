"""``quantum exchange …`` (filled in below)."""
import typer

app = typer.Typer(help="The local exchange server.", no_args_is_help=True)
