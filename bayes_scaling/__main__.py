"""``python -m bayes_scaling``: the same command line as ``bayes-scaling``."""

from bayes_scaling.cli.app import main

raise SystemExit(main())
