"""Adds the Content-Security-Policy header, which Django 5.2 does not send by itself."""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy",
                                    settings.FERRY_CONTENT_SECURITY_POLICY)
        return response
