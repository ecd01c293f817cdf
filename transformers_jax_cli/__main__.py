from transformers_jax_cli import console_main

console_main()
