"""Instruction tuning: recipes (`recipe`), transfer strategies (`strategies`, `distill`), process setup
(`distributed`), the Trainer + DeepSpeed glue (`trainer`), the CLI (`cli`) and export (`export`)."""
