"""`worker forecast`: invocation history in, a seasonal forecast and scheduled capacity out.

`sources` reads the history, `model` fits and forecasts it, `schedule` turns the forecast
into Application Auto Scaling actions and their cost, `command` is the command line.
"""
