"""The `data` section of the config: the table, how to read it, its target and task, splits and the handling
of its columns (schema.py holds the other sections)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from nntrain.config.strict import MAX_SEED, Strict

EXCEL = (".xlsx", ".xlsm", ".xls")  # the workbooks data.sheet applies to (data/readers.py reads them)

SPACES = r"\s+"  # fields parted by runs of spaces or tabs, columns aligned (pandas' whitespace delimiter)
SEPARATORS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|", "\\t": "\t", "spaces": SPACES}


class DataConfig(Strict):
    path: str = Field(
        min_length=1,
        description="a table file: CSV / TSV (compressed too), Excel, JSON Lines, Parquet, Feather; or "
        "sklearn:iris|wine|breast_cancer|digits|diabetes",
    )
    sep: str | None = Field(
        None,
        description="a text file's delimiter: one character, or comma, semicolon, tab, pipe, spaces (runs of spaces "
        "or tabs, columns aligned); default: found",
    )
    decimal: Literal[".", ","] | None = Field(
        None, description="a text file's decimal mark; default: '.', and ',' for columns whose every number has one"
    )
    thousands: Literal[",", ".", " ", "'", "_"] | None = Field(
        None,
        description="a text file's thousands separator (1,299); default: ',' where a column shows it (1,234.5), "
        "or in a comma-separated file; else none",
    )
    sheet: str | None = Field(None, description="an Excel workbook's sheet, by name; default: the one with most cells")
    target: str | None = Field(None, description="target column; default: the last column")
    task: Literal["auto", "multiclass", "binary", "regression"] = "auto"
    val_size: float = Field(
        0.1, gt=0, lt=1, description="fraction of the non-test rows held out to pick the best epoch"
    )
    test_size: float = Field(
        0.2, ge=0, lt=1, description="fraction of all rows, touched once at the end; 0: no test split (all rows train)"
    )
    split_seed: int | None = Field(None, ge=0, le=MAX_SEED, description="seed of the split; default: the run's seed")
    scale: Literal["standard", "robust", "quantile", "minmax", "none"] = Field(
        "standard",
        description="numbers, fitted on the training split: standard (mean, standard deviation); robust (median, "
        "interquartile range, then x / sqrt(1 + (x / 3)^2): far values clipped smoothly towards +-3); quantile "
        "(each value's rank among the training values, onto a standard normal, as QuantileTransformer's normal "
        "output); minmax; none",
    )
    impute: Literal["auto", "none", "mean", "median", "most_frequent"] = Field(
        "auto",
        description="missing feature values, fitted on the training split. auto: numbers missing in training get "
        "the median and a 0/1 'was missing' column (missing only later: the training mean), strings a level of "
        "their own; none: a missing value is an error",
    )
    missing_target: Literal["drop", "error"] = Field("drop", description="rows whose target is missing")
    target_transform: Literal["none", "log", "auto"] = Field(
        "none",
        description="regression: train on log(target), predict exp of the output (every value > 0); auto: log where "
        "every value is > 0 and the log makes the training values' skew nearer 0 by half or more",
    )
    drop: list[str] = Field(default_factory=list, description="columns to ignore (ids, leaks)")
    categorical: list[str] = Field(
        default_factory=list,
        description="numeric columns to read as categories (codes such as zone: 1, 2, 3)",
    )
    numeric: list[str] = Field(
        default_factory=list,
        description="whole-number columns to read as numbers where fit would read them as levels (found where "
        "each value's own mean target says far more than a smooth curve of the values: ids of people, sites)",
    )
    dates: list[str] = Field(
        default_factory=list,
        description="columns to read as dates (found without it where written 2013-01-31, 2013/01/31, 31/01/2013, "
        "01/31/2013, 31.01.2013 or 31 Jan 2013): year, month, day, weekday, "
        "day of year, hour, days since the training split's earliest, and the sine and cosine of the cycles",
    )
    date_order: dict[str, Literal["day_first", "month_first"]] = Field(
        default_factory=dict,
        description="{column: day_first or month_first}: how a date column writes 03/04/2013 where its values leave "
        "it open (found without it where a day is above 12)",
    )
    one_hot_max: int = Field(
        32, ge=1, description="a string column with more levels than this is learned through an embedding"
    )
    min_level_count: int = Field(
        5, ge=1, description="an embedded column's levels with fewer training rows share its unknown row"
    )
    class_weight: Literal["balanced"] | dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None, description="balanced, or {label: weight}: the loss weights each class's rows"
    )
    weight: str | None = Field(None, description="a column of per-row weights for the loss and the metrics")
    val_path: str | None = Field(None, description="a file of validation rows (the same columns as data.path)")
    test_path: str | None = Field(None, description="a file of test rows (the same columns as data.path)")
    split_column: str | None = Field(None, description="a column saying train, val or test for each row")
    group: str | None = Field(None, description="a column of groups: a group's rows stay in one split")
    time_column: str | None = Field(None, description="a date or number column: the latest rows are val and test")
    stream: Literal["auto", True, False] = Field(
        "auto",
        description="read a Parquet data.path (a file, folder or glob) a chunk at a time while training: auto "
        "streams where the encoded table would take more than half the memory available",
    )
    id: str | None = Field(
        None, description="a streamed run's row key: its hash splits the rows (default: file and row)"
    )
    sample_rows: int = Field(
        200_000, ge=1_000, description="a streamed run fits its preprocessing on a seeded sample of this many rows"
    )
    eval_rows: int = Field(
        250_000, ge=100, description="a streamed run scores at most this many validation (and test) rows"
    )
    shuffle_rows: int = Field(65_536, ge=1, description="a streamed run's shuffle buffer, in rows")
    stream_lanes: int | Literal["auto"] = Field(
        "auto",
        description="a streamed run reads its row groups in this many lanes, each giving an equal part of every "
        "batch; torchrun's ranks share them out (auto: one per rank); the same lanes train the same with any ranks",
    )
    stream_workers: Literal["auto", 0, 1] = Field(
        "auto",
        description="1: a streamed run reads and encodes its batches in a DataLoader worker process, overlapping "
        "the steps; 0: in the training process; auto: 1 where the machine has a core beyond its torchrun ranks'",
    )
    cache: bool = Field(
        True, description="keep the prepared data (matrix, splits, preprocessing) for the next fit of the same file"
    )
    cache_dir: str | None = Field(None, description="where the cache lives; default RUNS_DIR/.cache")
    cache_max_gb: float = Field(4.0, ge=0, description="the cache's size; the least recently used entries go first")

    @field_validator("sep", mode="before")
    @classmethod
    def _sep(cls, v: Any) -> Any:
        v = SEPARATORS.get(v, v) if isinstance(v, str) else v
        if isinstance(v, str) and v != SPACES and (len(v) != 1 or v in '"\r\n'):
            raise ValueError(f"give one character or {', '.join(SEPARATORS)}")
        return v

    @model_validator(mode="after")
    def _one_split(self) -> DataConfig:
        if self.decimal is not None and self.decimal == self.thousands:
            raise ValueError("data.decimal and data.thousands must differ")
        if self.split_column and (self.val_path or self.test_path or self.group or self.time_column):
            raise ValueError(
                "data.split_column says each row's split: give no val_path, test_path, group or time_column"
            )
        if self.group and self.time_column:
            raise ValueError("give either data.group or data.time_column, not both")
        return self
