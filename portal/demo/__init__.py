"""Demo data for Mianyang: the named places and people of the 2017 account,
and a reproducible set of generated villages, households, needs and pledges.
Loaded by ``manage.py load_demo``; see :mod:`portal.demo.loader`."""
