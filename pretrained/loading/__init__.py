"""The one loading pass: find checkpoint files, stream tensors through hooks into a model, save."""
