"""`python -m worker …`: the container's ENTRYPOINT."""

from worker.cli import main

main()
