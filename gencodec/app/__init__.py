"""`gencodec app`: a local web page to try the codec on a photo, beside the best classical file of the same size.

Needs `pip install 'gencodec[app]'`. The parts, one idea each:

* gencodec.app.session: the work behind the page (upload -> our file and its decode, the best
  classical file at the same bytes), with no web framework, so it can be tested and timed alone;
* gencodec.app.ui: the Gradio page around it, and serving it on the loopback interface;
* gencodec.app.commands: the `gencodec app` command;
* gencodec.app.browser: a headless Chromium that drives the page (the browser test, the README's
  screenshots).
"""

#: The loopback interface, where the app listens unless told otherwise, and the names it goes by.
LOOPBACK = "127.0.0.1"
LOOPBACK_HOSTS = (LOOPBACK, "localhost", "::1")
