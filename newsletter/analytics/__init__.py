"""What readers do with an edition: tracked links, the click buffer, the machine-click
filter, and edition reports. Nothing here names a reader unless the list chose individual
tracking."""
