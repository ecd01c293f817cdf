"""Marian: fixed sinusoidal positions (not params), no embedding LayerNorm, scaled embeddings, swish;
the unshared config gives the decoder its own smaller vocabulary (``decoder_vocab_size``)."""
import transformers as hf

from seq2seq_cases import Seq2SeqFamily

BASE = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=40,
            pad_token_id=1, eos_token_id=2, decoder_start_token_id=1, scale_embedding=True,
            activation_function="swish")


def restore_positions(model):
    """Put Hugging Face's fixed sinusoidal tables back after the weights were perturbed."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, hf.models.marian.modeling_marian.MarianSinusoidalPositionalEmbedding):
                module.weight.copy_(module.create_weight())


FAMILY = Seq2SeqFamily(
    name="marian", hf_config_class=hf.MarianConfig,
    heads={"MarianModel": hf.MarianModel, "MarianMTModel": hf.MarianMTModel,
           "MarianForCausalLM": hf.MarianForCausalLM},
    configs={"base": BASE, "unshared": dict(BASE, share_encoder_decoder_embeddings=False, decoder_vocab_size=77)},
    parity=[("MarianModel", "base"), ("MarianMTModel", "base"), ("MarianForCausalLM", "base"),
            ("MarianMTModel", "unshared"), ("MarianModel", "unshared")],
    prepare_hf=restore_positions,
)
