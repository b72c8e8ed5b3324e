"""Generated from proto/shoal/v1 by gen_protos.py; do not edit."""
