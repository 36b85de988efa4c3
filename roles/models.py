"""No models: the roles are ``auth`` groups (roles.services). This module exists so that Django
sends ``post_migrate`` for this app (it skips apps without a models module)."""
