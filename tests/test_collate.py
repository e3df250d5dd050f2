"""Padding examples into batches (wavtune.data.collate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavtune.data.collate import IGNORE_INDEX, Batch, Collator
from wavtune.data.dataset import Example


def _example(id_: str, samples: int, labels: tuple[int, ...] = ()) -> Example:
    wave = np.arange(1, samples + 1, dtype=np.float32) / 10  # no real sample is 0
    return Example(id_, wave, labels)


EXAMPLES = [_example("a", 3, (5, 6)), _example("b", 5, (7,)), _example("c", 1, (4, 4, 4))]


def test_audio_is_zero_padded_to_the_longest() -> None:
    batch = Collator()(EXAMPLES)
    assert batch.input_values.shape == (3, 5)
    assert batch.input_values.dtype == torch.float32
    np.testing.assert_allclose(batch.input_values[0].numpy(), [0.1, 0.2, 0.3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(batch.input_values[1].numpy(), [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)
    np.testing.assert_allclose(batch.input_values[2].numpy(), [0.1, 0, 0, 0, 0], rtol=1e-6)


def test_attention_mask_marks_real_samples() -> None:
    batch = Collator()(EXAMPLES)
    assert batch.attention_mask.dtype == torch.long
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert batch.num_samples == 9


def test_labels_are_padded_with_ignore_index() -> None:
    batch = Collator()(EXAMPLES)
    assert IGNORE_INDEX == -100
    assert batch.labels is not None and batch.labels.dtype == torch.long
    assert batch.labels.tolist() == [[5, 6, -100], [7, -100, -100], [4, 4, 4]]


def test_ids_are_kept_in_order() -> None:
    assert Collator()(EXAMPLES).ids == ("a", "b", "c")


def test_pad_to_multiple_of_rounds_the_length_up() -> None:
    batch = Collator(pad_to_multiple_of=4)(EXAMPLES)
    assert batch.input_values.shape == (3, 8)
    assert batch.attention_mask[1].tolist() == [1] * 5 + [0] * 3
    assert batch.input_values[1, 5:].abs().sum() == 0
    # an exact multiple is left alone
    assert Collator(pad_to_multiple_of=5)(EXAMPLES).input_values.shape == (3, 5)


def test_examples_without_transcripts_give_one_column_of_ignore_index() -> None:
    batch = Collator()([_example("a", 2), _example("b", 3)])
    assert batch.labels is not None
    assert batch.labels.tolist() == [[-100], [-100]]


def test_with_labels_false_gives_no_labels() -> None:
    assert Collator(with_labels=False)(EXAMPLES).labels is None


def test_empty_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        Collator()([])


def test_model_inputs_with_and_without_attention_mask() -> None:
    batch = Collator()(EXAMPLES)
    full = batch.model_inputs(use_attention_mask=True)
    assert set(full) == {"input_values", "attention_mask", "labels"}
    assert full["input_values"] is batch.input_values
    assert full["attention_mask"] is batch.attention_mask
    assert full["labels"] is batch.labels
    assert set(batch.model_inputs(use_attention_mask=False)) == {"input_values", "labels"}
    assert set(batch.model_inputs(True, with_labels=False)) == {"input_values", "attention_mask"}
    unlabeled = Collator(with_labels=False)(EXAMPLES)
    assert set(unlabeled.model_inputs(False)) == {"input_values"}


def test_batch_to_keeps_everything() -> None:
    batch = Collator()(EXAMPLES)
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and moved.ids == batch.ids
    assert torch.equal(moved.input_values, batch.input_values)
    assert torch.equal(moved.attention_mask, batch.attention_mask)
    assert moved.labels is not None and torch.equal(moved.labels, batch.labels)
    assert Collator(with_labels=False)(EXAMPLES).to("cpu").labels is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locked memory needs a GPU")
def test_a_pinning_data_loader_pins_the_whole_batch() -> None:
    from torch.utils.data import DataLoader

    loader = DataLoader(EXAMPLES, batch_size=3, collate_fn=Collator(), pin_memory=True)
    (batch,) = list(loader)
    assert isinstance(batch, Batch) and batch.ids == ("a", "b", "c")
    assert batch.input_values.is_pinned() and batch.attention_mask.is_pinned()
    assert batch.labels is not None and batch.labels.is_pinned()
    assert torch.equal(batch.input_values, Collator()(EXAMPLES).input_values)


def test_label_multiple_rounds_the_label_width_up_with_ignore_index() -> None:
    batch = Collator(label_multiple=4)(EXAMPLES)
    assert batch.labels is not None and batch.labels.shape[1] == 4
    plain = Collator()(EXAMPLES)
    assert plain.labels is not None
    width = plain.labels.shape[1]
    assert width == 3
    assert batch.labels[:, :width].tolist() == plain.labels.tolist()
    assert (batch.labels[:, width:] == -100).all()
