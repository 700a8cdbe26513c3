"""Take a variant home: export it to the runtime it will ship on, verify it there, write its model card."""
