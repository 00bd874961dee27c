"""The closed-loop simulator behind scripts/simulate.py: worlds (`worlds`), the gateway it
drives (`gateway`), how a router is scored (`metrics`) and how an artifact is trained
(`training`). Only simulate.py and the tests import it; the modules import each other in
that order (worlds first, nothing imports simulate.py)."""
