"""`python app.py`: the pillcheck web app (the same as `pillcheck serve`; see `python app.py --help`)."""

import sys

from pillcheck.ui.serve import main

if __name__ == "__main__":
    sys.exit(main())
