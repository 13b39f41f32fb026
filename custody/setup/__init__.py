"""Creating and checking an installation (`custody init`)."""
