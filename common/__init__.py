"""Small shared helpers with no better home: capped, jittered backoff and the structured
logging set-up that `luxtel` and the rules process both use."""
