"""`python -m luxtel`, the same as the `luxtel` command."""

from luxtel.cli import main

main()
