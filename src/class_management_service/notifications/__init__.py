"""Teacher notifications for the platform's websocket service (TeacherNotificationRequestedV1)."""
