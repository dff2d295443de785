"""The crawler's download handlers (Scrapy's ``DOWNLOAD_HANDLERS``)."""
