"""AzureML SDK v1 import paths, served by Kittiwake's SDK."""
