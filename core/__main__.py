from mb.cli import run

run()
