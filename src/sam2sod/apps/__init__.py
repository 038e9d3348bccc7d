"""Applications built on the `sam2sod.Predictor` API (the Gradio demo)."""
