from biotalk.reports import clip_summary


def test_clip_summary_shows_every_reported_metric():
    metrics = {
        "zero_shot": {"test1": {"hF": 0.5}, "test2": {"hF": 0.125}},
        "zero_shot_hierarchical": {"test1": {"hF": 0.55}, "test2": {"hF": 0.2}},
        "knn": {"test1": {"k=1": 0.4}, "test2": {"k=1": 0.1}},
        "retrieval": {"dna_to_text": {"R@1": 0.1, "R@5": 0.2, "R@10": 0.3}},
    }
    table = clip_summary(metrics)
    assert "| zero-shot hF (nearest EC) | 0.5000 | 0.1250 |" in table
    assert "| zero-shot hF (hierarchical) | 0.5500 | 0.2000 |" in table
    assert "| DNA-tower kNN hP, k=1 | 0.4000 | 0.1000 |" in table
    assert "0.100 / 0.200 / 0.300" in table
    assert "text to dna" not in table  # absent results are not invented
