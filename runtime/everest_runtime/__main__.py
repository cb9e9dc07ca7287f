"""python -m everest_runtime <status|bootstrap|run-task> ..."""

import sys

from .cli import module_main

if __name__ == "__main__":
    sys.exit(module_main(sys.argv[1:]))
