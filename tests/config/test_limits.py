"""Security row 3: every numeric field of a job spec has an upper bound, and a value past
it is refused naming the field (the API turns this into a 422)."""
import pytest

from sam3_video.config import ConfigError, EvalConfig, TrainConfig, parse_config

BASE = {"data": {"train": "synthetic"}, "max_steps": 10}


def with_field(dotted: str, value):
    config = {"data": dict(BASE["data"]), "max_steps": BASE["max_steps"]}
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return config


@pytest.mark.parametrize("field, value", [
    ("data.num_workers", 100_000),
    ("data.image_size", 140_000),
    ("data.batch_size_per_gpu", 10**9),
    ("max_steps", 10**12),
    ("max_steps", 2**31),          # a 500 on PostgreSQL's int32 column before
    ("keep_last", 10**9),
    ("grad_accum_steps", 10**9),
    ("data.frame_stride_max", 10**9),
    ("seed", 2**80),               # a ValueError inside numpy, retried as infrastructure
    ("seed", -1),
    ("track.correction_clicks", 10**9),
    ("model.init.job_id", 2**31),
    ("optim.lr", 1e9),
])
def test_row3_unbounded_numbers_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        parse_config("train", with_field(field, value))
    assert any(p.startswith(field) for p in err.value.problems), err.value.problems


def test_row3_bounds_leave_real_jobs_alone():
    config = parse_config("train", with_field("max_steps", 500_000))
    assert config.max_steps == 500_000
    assert parse_config("train", with_field("seed", 2**32 - 1)).seed == 2**32 - 1


def test_row3_every_integer_field_documents_a_maximum():
    """The published schema carries the bounds, so clients can see them."""
    def integer_fields(schema, defs, path=""):
        if "$ref" in schema:
            schema = defs[schema["$ref"].split("/")[-1]]
        for name, prop in schema.get("properties", {}).items():
            options = prop.get("anyOf", [prop])
            for option in options:
                if "$ref" in option:
                    yield from integer_fields(option, defs, f"{path}{name}.")
                elif option.get("type") in ("integer", "number"):
                    yield f"{path}{name}", option

    for model in (TrainConfig, EvalConfig):
        schema = model.model_json_schema()
        fields = dict(integer_fields(schema, schema.get("$defs", {})))
        assert fields
        unbounded = [name for name, option in fields.items()
                     if "maximum" not in option and "exclusiveMaximum" not in option]
        assert unbounded == [], f"{model.__name__}: {unbounded}"
