#!/usr/bin/env bash
# EMR bootstrap action: the driver's Python gets kappalake's dependencies, and the checkout.
#   aws s3 cp dist/kappalake-*.whl s3://my-bucket/kappalake/   (python -m pip wheel . --no-deps -w dist)
#   aws s3 cp examples/emr/bootstrap.sh s3://my-bucket/kappalake/
# then add s3://my-bucket/kappalake/bootstrap.sh as a bootstrap action (argument: the S3 prefix).
set -euo pipefail
PREFIX="${1:?usage: bootstrap.sh s3://bucket/prefix}"
aws s3 cp --recursive --exclude '*' --include 'kappalake-*.whl' "$PREFIX/" /tmp/kappalake/
sudo python3 -m pip install --quiet /tmp/kappalake/kappalake-*.whl botocore
# The checkout the steps run from (spark-submit.sh, src/, conf/).
aws s3 cp --recursive "$PREFIX/repo/" /home/hadoop/kappalake/ --quiet
chmod +x /home/hadoop/kappalake/spark-submit.sh
# The KAPPALAKE_* variables conf/emr.yaml reads (see docs/deploying.md) go to /home/hadoop/kappalake.env,
# which the steps source; fetch secrets from Secrets Manager rather than storing them in S3:
#   aws secretsmanager get-secret-value --secret-id kappalake/env --query SecretString --output text \
#     > /home/hadoop/kappalake.env && chmod 600 /home/hadoop/kappalake.env
