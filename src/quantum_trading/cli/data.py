"""``quantum data …`` (filled in below)."""
import typer

app = typer.Typer(help="Market data: download, import, list, validate, repair, synth, resample.", no_args_is_help=True)
