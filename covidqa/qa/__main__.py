"""``python -m covidqa.qa train|eval|test|default|ship ...``: the reader's command line (:mod:`covidqa.qa.cli`)."""
import sys

from covidqa.qa.cli import main

sys.exit(main())
