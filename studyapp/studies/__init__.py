"""Study management: the services the admin, the API and the commands share."""
