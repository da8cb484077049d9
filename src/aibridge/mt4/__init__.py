"""Run the MQL4 EA itself outside MetaTrader: source rewriter, g++ build, bar-by-bar replay.

* :mod:`aibridge.mt4.rewrite` — MQL4 -> C++ (the few constructs that are not C++);
* :mod:`aibridge.mt4.build` — compile the EA with the stand-in runtime (``mt4_ea/standin``);
* :mod:`aibridge.mt4.replay` — replay an MT4 CSV through the compiled EA against a server.
"""
