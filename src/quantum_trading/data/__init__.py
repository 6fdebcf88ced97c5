"""Market data: readers, validation, repair, the Parquet store, ccxt downloads, synthetic markets
and resampling.

Every OHLCV frame has a UTC ``DatetimeIndex`` of bar **open** times named ``date`` (bar t covers
[t, t + timeframe)) and float64 columns ``open high low close volume``. Funding frames have one
column ``funding_rate`` at settlement times; mark frames ``open high low close``.

>>> from quantum_trading.data import generate_market, validate_ohlcv
>>> market = generate_market(n_assets=2, n_bars=500, seed=1)
>>> validate_ohlcv(market.ohlcv["BTC/USDT:USDT"], timeframe="1h").gap_count
0
"""

from quantum_trading.data.download import DownloadReport, make_client
from quantum_trading.data.layout import candidate_paths, parse_data_file_name, store_path
from quantum_trading.data.loaders import (
    find_data_file,
    join_funding,
    join_mark,
    load_funding,
    load_mark,
    load_ohlcv,
)
from quantum_trading.data.readers import (
    read_funding,
    read_mark,
    read_ohlcv,
    read_table,
    write_frame,
)
from quantum_trading.data.repair import RepairReport, repair_ohlcv
from quantum_trading.data.resample import align_to_lower, merge_timeframes, resample_ohlcv
from quantum_trading.data.store import MergeReport, ParquetStore
from quantum_trading.data.symbols import symbol_to_filename
from quantum_trading.data.synthetic import (
    REGIME_NAMES,
    Regime,
    SyntheticMarket,
    SyntheticMarketConfig,
    generate_market,
)
from quantum_trading.data.timeframes import timeframe_to_timedelta
from quantum_trading.data.validate import (
    ValidationReport,
    validate_funding,
    validate_mark,
    validate_ohlcv,
)

__all__ = [
    "REGIME_NAMES",
    "DownloadReport",
    "MergeReport",
    "ParquetStore",
    "Regime",
    "RepairReport",
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "ValidationReport",
    "align_to_lower",
    "candidate_paths",
    "find_data_file",
    "generate_market",
    "join_funding",
    "join_mark",
    "load_funding",
    "load_mark",
    "load_ohlcv",
    "make_client",
    "merge_timeframes",
    "parse_data_file_name",
    "read_funding",
    "read_mark",
    "read_ohlcv",
    "read_table",
    "repair_ohlcv",
    "resample_ohlcv",
    "store_path",
    "symbol_to_filename",
    "timeframe_to_timedelta",
    "validate_funding",
    "validate_mark",
    "validate_ohlcv",
    "write_frame",
]
