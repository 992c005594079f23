"""`python -m tapeproxy` runs the command line."""

from tapeproxy.launch import main

main()
