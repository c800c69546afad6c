import sys

from ifrt.cli import main

sys.exit(main())
