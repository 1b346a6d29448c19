"""`macrowatch demo`: the real daemon on a bundled scenario, with an accelerated clock and no network.

    scenario.py   the story (spring 2017), its config, and the bars and vintages made from it
    feeds.py      the scenario as a PriceFeed and a MacroFeed that never show what has not happened yet
    run.py        the command: intro, the daemon until the scenario's end, alerts as they fire, outro
    data.py       `demo --data DIR`: the scenario as a data directory for `replay --data` and rule tests
"""
