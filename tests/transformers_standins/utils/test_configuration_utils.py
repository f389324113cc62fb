"""Stand-in for transformers' `tests/utils/test_configuration_utils.py` (not in the sdist): only the
`config_common_kwargs` table that `ConfigTester.check_config_arguments_init` reads.

It lists fields every `PreTrainedConfig` takes, each with a non-default value, so that a config class that drops one
of them fails. (The check returns early for configs with sub-configs, such as `TSGVConfig`; the table must still be
importable.)
"""

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "tie_word_embeddings": False,
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "finetuning_task": "translation",
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "tokenizer_class": "BertTokenizerFast",
    "prefix": "prefix",
    "bos_token_id": 6,
    "pad_token_id": 7,
    "eos_token_id": 8,
    "sep_token_id": 9,
    "decoder_start_token_id": 10,
    "problem_type": "regression",
}
