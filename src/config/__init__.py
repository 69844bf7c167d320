"""Validated configuration: YAML profiles in ``conf/`` merged into one typed object.

The models are split by section (``sections.py``, ``pipelines.py``, ``model.py`` for the whole
:class:`Config`) and loading is in ``loader.py``; this package is the one place to import
them from.
"""

from kappalake.config.loader import (default_conf_dir, deep_merge, derive, format_validation_error, load_config,
                                     nest_overrides)
from kappalake.config.model import Config
from kappalake.config.pipelines import PipelineConf, RankConf, RouteConf, SinkConf, SourceConf, TriggerConf
from kappalake.config.resolved import PipelineSpec, RouteSpec
from kappalake.config.sections import (AlertsConf, BrokerConf, ClusterConf, DashboardConf, KafkaConf, LakeConf,
                                       MaintenanceConf, MonitoringConf, PrivacyConf, ProducerConf, QualityConf,
                                       ReferenceConf, SparkConf, TopicConf)
from kappalake.errors import ConfigError  # what loading raises, importable from here as before

__all__ = ["AlertsConf", "BrokerConf", "ClusterConf", "Config", "ConfigError", "DashboardConf", "KafkaConf", "LakeConf",
           "MaintenanceConf", "MonitoringConf", "PipelineConf", "PipelineSpec", "PrivacyConf", "ProducerConf", "QualityConf", "RankConf",
           "ReferenceConf", "RouteConf", "RouteSpec", "SinkConf", "SourceConf", "SparkConf", "TopicConf", "TriggerConf", "default_conf_dir",
           "deep_merge", "derive", "format_validation_error", "load_config", "nest_overrides"]
