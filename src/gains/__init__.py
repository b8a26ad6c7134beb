"""gains."""
