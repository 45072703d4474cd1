"""folium/Leaflet pages: the operator live map, installer and audit views, served assets."""
