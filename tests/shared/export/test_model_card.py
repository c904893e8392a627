from shared.export.model_card import write_model_card


def test_model_card_contains_the_figures(exported, tmp_path):
    _, results = exported
    path = write_model_card(
        tmp_path, app="vision", task="classify",
        config={"epochs": 2, "batch_size": 64, "learning_rate": 0.001},
        data={"dataset": "fashion_mnist", "train_examples": 3000, "classes": 10},
        metrics={"accuracy": 0.8123, "loss": 0.5432, "per_class": {"t-shirt": 0.75}},
        exports=results,
    )
    assert path == tmp_path / "model_card.md"
    text = path.read_text()
    assert text.startswith("# Model card: vision / classify")
    for section in ("## Intended use", "## Data", "## Training config", "## Evaluation metrics",
                    "## Exports", "## Limitations"):
        assert section in text
    assert "| accuracy | 0.8123 |" in text and "| per_class.t-shirt | 0.75 |" in text
    assert "| dataset | fashion_mnist |" in text and "| batch_size | 64 |" in text
    for key, r in results.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {key} |"))
        assert f"{r['size_bytes']:,} bytes" in row and "passed" in row
        assert f"`{r['path']}`" in row
    int8_row = next(line for line in text.splitlines() if line.startswith("| tflite_int8 |"))
    assert f"{results['tflite_int8']['top1_agreement']:.4f}".rstrip("0").rstrip(".") in int8_row
    assert "outputs int8" in text
    assert [p.name for p in tmp_path.iterdir()] == ["model_card.md"]


def test_model_card_marks_failed_exports_and_rewrites(tmp_path):
    failed = {"tflite_int8": {"format": "tflite", "quantize": "int8", "passed": False,
                              "path": "model_int8.tflite", "error": "boom"}}
    write_model_card(tmp_path, app="nlp", task="sentiment", config={}, data={}, metrics={},
                     exports=failed)
    path = write_model_card(tmp_path, app="nlp", task="sentiment", config={}, data={},
                            metrics={"f1": float("nan")}, exports=failed, limitations=["Short texts only."])
    text = path.read_text()
    assert "FAILED" in text and "- Short texts only." in text and "| f1 | nan |" in text
