"""Essay -> student associations: NLP suggestions, teacher review, timeout confirmation."""
