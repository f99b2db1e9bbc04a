"""The Gradio app (mobile web UI and the named HTTP API). Importing it switches Gradio's analytics off first."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
