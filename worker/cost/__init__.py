"""What running one function costs per month on each platform, from its measured profile.

`worker cost` (`worker/cost/command.py`) prints the table; `model.py` holds the arithmetic
and `prices.json` the dated rates it uses.
"""
