"""The web app: LearnReg's panel and Slicer's views in a browser (``learnreg web``), on trame-slicer.

:mod:`learnreg.web.session` holds what the app does (GUI-free); :mod:`learnreg.web.app` the page.
"""
