"""loclip.demo: the Gradio referring/grounding demo (``loclip-demo``).

``limits`` checks requests, ``backend`` runs the model on plain inputs, ``defaults`` picks the model and the
example, ``app`` builds the page and its API endpoints, ``cli`` is the entry point. Importing this package
imports neither gradio nor a model.
"""
