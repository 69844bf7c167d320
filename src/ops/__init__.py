"""Operations: what the streams record about themselves, lag, status, maintenance and start-up guards."""
