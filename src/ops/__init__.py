"""Operations: status, maintenance, verify and chaos, over what the job wrote and recorded."""
