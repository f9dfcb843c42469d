import sys

from .tooling.cli import main

if __name__ == "__main__":  # worker processes re-import this module; only the real command runs main()
    sys.exit(main())
