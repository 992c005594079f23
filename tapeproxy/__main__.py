"""`python -m tapeproxy` runs the command line."""

from tapeproxy.cli import main

main()
