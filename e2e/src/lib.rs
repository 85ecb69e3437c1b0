//! End-to-end harness for chat-service.
